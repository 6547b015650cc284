"""Human approval at the edge: calls the rules name are held until a person approves
exactly those arguments (issue 26). model: the records; decide: pure decisions; store:
where pending approvals live (memory, or Redis shared by replicas); service: the hold
the guard uses; admin: the approvers' API and page on the admin port."""
