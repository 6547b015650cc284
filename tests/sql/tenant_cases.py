"""A two-tenant fixture and hand-filtered reference queries shared by the DuckDB and
PostgreSQL tenant tests. References bind the tenant as a parameter (`?`), so they do
not depend on the quoting under test."""

from __future__ import annotations

HOSTILE = (
    "x'; DROP TABLE orders; --",
    "a\\'b",
    "\u00fc\u2019'\\\\n",
    'quote"double',
    "t1' OR '1'='1",
    "\u0441\u0435\u0440\u0432\u0435\u0440 \U0001f600",
)
TENANTS = ("t1", "t2", *HOSTILE)

SCHEMA = (
    "CREATE TABLE customers (id INT, tenant_id TEXT, name TEXT)",
    "CREATE TABLE orders (id INT, tenant_id TEXT, customer_id INT, amount INT, status TEXT)",
    "CREATE TABLE items (id INT, tenant_id TEXT, order_id INT, sku TEXT, qty INT)",
    "CREATE TABLE products (id INT, sku TEXT, title TEXT)",
)
ROWS: dict[str, list[tuple[object, ...]]] = {
    "customers": [(1, "t1", "Ann"), (2, "t1", "Bob"), (1, "t2", "Cat"), (3, "t2", "Dan"),
                  (4, HOSTILE[0], "Eve"), (5, HOSTILE[2], "Fay"), (1, HOSTILE[5], "Gus")],
    "orders": [(1, "t1", 1, 10, "open"), (2, "t1", 1, 20, "paid"), (3, "t1", 2, 30, "open"),
               (1, "t2", 1, 100, "open"), (4, "t2", 3, 200, "paid"), (5, "t2", 1, 5, "open"),
               (6, HOSTILE[0], 4, 7, "open"), (7, HOSTILE[2], 5, 70, "paid"),
               (2, HOSTILE[5], 1, 9, "open")],
    "items": [(1, "t1", 1, "A", 1), (2, "t1", 2, "B", 2), (3, "t2", 1, "A", 5),
              (4, "t2", 4, "C", 1), (5, HOSTILE[0], 6, "B", 3)],
    "products": [(1, "A", "Apple"), (2, "B", "Banana"), (3, "C", "Cherry"), (4, "D", "Date")],
}
TENANT_TABLES = ("orders", "customers", "items")

# (name, query, hand-filtered reference with `?` for the tenant)
CASES: list[tuple[str, str, str]] = [
    ("select_star", "SELECT * FROM orders", "SELECT * FROM orders WHERE tenant_id = ?"),
    ("quoted_name", 'SELECT * FROM "orders"', "SELECT * FROM orders WHERE tenant_id = ?"),
    ("schema_qualified", "SELECT id, amount FROM {schema}.orders",
     "SELECT id, amount FROM orders WHERE tenant_id = ?"),
    ("inner_join",
     "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id",
     "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id "
     "AND c.tenant_id = ? WHERE o.tenant_id = ?"),
    ("star_join", "SELECT * FROM orders AS o JOIN customers AS c ON c.id = o.customer_id",
     "SELECT * FROM orders o JOIN customers c ON c.id = o.customer_id AND c.tenant_id = ? "
     "WHERE o.tenant_id = ?"),
    ("left_join",
     "SELECT c.id, c.name, o.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id",
     "SELECT c.id, c.name, o.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id "
     "AND o.tenant_id = ? WHERE c.tenant_id = ?"),
    ("left_join_from_shared",
     "SELECT p.sku, i.qty FROM products p LEFT JOIN items i ON i.sku = p.sku",
     "SELECT p.sku, i.qty FROM products p LEFT JOIN items i ON i.sku = p.sku "
     "AND i.tenant_id = ?"),
    ("self_join",
     "SELECT a.id, b.id FROM orders a JOIN orders b ON a.customer_id = b.customer_id "
     "AND a.id < b.id",
     "SELECT a.id, b.id FROM orders a JOIN orders b ON a.customer_id = b.customer_id "
     "AND a.id < b.id WHERE a.tenant_id = ? AND b.tenant_id = ?"),
    ("three_way",
     "SELECT o.id, c.name, i.sku, p.title FROM orders o JOIN customers c ON c.id = "
     "o.customer_id JOIN items i ON i.order_id = o.id JOIN products p ON p.sku = i.sku",
     "SELECT o.id, c.name, i.sku, p.title FROM orders o JOIN customers c ON c.id = "
     "o.customer_id JOIN items i ON i.order_id = o.id JOIN products p ON p.sku = i.sku "
     "WHERE o.tenant_id = ? AND c.tenant_id = ? AND i.tenant_id = ?"),
    ("cte_shadows_table", "WITH orders AS (SELECT sku AS id FROM products) SELECT * FROM orders",
     "SELECT sku AS id FROM products"),
    ("cte_body_reads_table",
     "WITH orders AS (SELECT id, amount FROM orders WHERE amount > 8) SELECT * FROM orders",
     "SELECT id, amount FROM orders WHERE amount > 8 AND tenant_id = ?"),
    ("cte_then_join",
     "WITH big AS (SELECT * FROM orders WHERE amount > 8) "
     "SELECT b.id, c.name FROM big b JOIN customers c ON c.id = b.customer_id",
     "SELECT b.id, c.name FROM orders b JOIN customers c ON c.id = b.customer_id "
     "AND c.tenant_id = ? WHERE b.amount > 8 AND b.tenant_id = ?"),
    ("union", "SELECT id FROM orders UNION SELECT order_id FROM items",
     "SELECT id FROM orders WHERE tenant_id = ? UNION SELECT order_id FROM items "
     "WHERE tenant_id = ?"),
    ("union_all_shared", "SELECT customer_id FROM orders UNION ALL SELECT id FROM products",
     "SELECT customer_id FROM orders WHERE tenant_id = ? UNION ALL SELECT id FROM products"),
    ("correlated_scalar",
     "SELECT c.name, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) AS n "
     "FROM customers c",
     "SELECT c.name, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id "
     "AND o.tenant_id = ?) AS n FROM customers c WHERE c.tenant_id = ?"),
    ("exists",
     "SELECT c.id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o "
     "WHERE o.customer_id = c.id AND o.amount > 15)",
     "SELECT c.id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o "
     "WHERE o.customer_id = c.id AND o.amount > 15 AND o.tenant_id = ?) AND c.tenant_id = ?"),
    ("in_subquery", "SELECT id, name FROM customers WHERE id IN (SELECT customer_id FROM orders)",
     "SELECT id, name FROM customers WHERE id IN (SELECT customer_id FROM orders "
     "WHERE tenant_id = ?) AND tenant_id = ?"),
    ("not_in_subquery",
     "SELECT id FROM products WHERE sku NOT IN (SELECT sku FROM items)",
     "SELECT id FROM products WHERE sku NOT IN (SELECT sku FROM items WHERE tenant_id = ?)"),
    ("aggregate", "SELECT status, count(*), sum(amount) FROM orders GROUP BY status",
     "SELECT status, count(*), sum(amount) FROM orders WHERE tenant_id = ? GROUP BY status"),
    ("having",
     "SELECT customer_id, sum(amount) FROM orders GROUP BY customer_id HAVING sum(amount) > 15",
     "SELECT customer_id, sum(amount) FROM orders WHERE tenant_id = ? GROUP BY customer_id "
     "HAVING sum(amount) > 15"),
    ("window",
     "SELECT id, sum(amount) OVER (PARTITION BY customer_id ORDER BY id) AS run, "
     "rank() OVER (ORDER BY amount DESC) AS r FROM orders",
     "SELECT id, sum(amount) OVER (PARTITION BY customer_id ORDER BY id) AS run, "
     "rank() OVER (ORDER BY amount DESC) AS r FROM orders WHERE tenant_id = ?"),
    ("derived_table",
     "SELECT * FROM (SELECT customer_id, sum(amount) AS s FROM orders GROUP BY customer_id) t "
     "WHERE s > 10",
     "SELECT * FROM (SELECT customer_id, sum(amount) AS s FROM orders WHERE tenant_id = ? "
     "GROUP BY customer_id) t WHERE s > 10"),
    ("table_name_qualifiers",
     "SELECT orders.id, orders.amount FROM orders WHERE orders.amount > 5",
     "SELECT orders.id, orders.amount FROM orders WHERE orders.amount > 5 "
     "AND orders.tenant_id = ?"),
    ("lateral",
     "SELECT c.id, x.n FROM customers c, LATERAL (SELECT count(*) AS n FROM orders o "
     "WHERE o.customer_id = c.id) x",
     "SELECT c.id, x.n FROM customers c, LATERAL (SELECT count(*) AS n FROM orders o "
     "WHERE o.customer_id = c.id AND o.tenant_id = ?) x WHERE c.tenant_id = ?"),
    ("keywords_in_literals",
     "SELECT id FROM orders WHERE status <> 'DELETE FROM orders; --' /* FROM items */",
     "SELECT id FROM orders WHERE status <> 'x' AND tenant_id = ?"),
]


def sorted_rows(rows: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return sorted((tuple(r) for r in rows), key=repr)
