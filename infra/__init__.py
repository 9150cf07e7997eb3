"""paymesh on AWS as code: the CDK app (`stack.py`), its in-process synthesis (`synth.py`)
and its deployment into moto for the tests (`deploy_local.py`).

Everything is built from paymesh's own data (`paymesh.entrypoints.aws.manifest`, the table
specs, the workflow definitions, the default rules), never restated here.
"""

import os

# jsii's runtime prints a banner on stderr in every process that loads it on a Node it no
# longer supports (Node 20 here); synthesis is unaffected. Set before any jsii module loads
# (every infra module imports this package first).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
