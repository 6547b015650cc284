"""`python -m proxy.config > rules/schema.json` regenerates the editor schema."""

import json

from proxy.config.load import rules_json_schema

print(json.dumps(rules_json_schema(), indent=2, sort_keys=True))
