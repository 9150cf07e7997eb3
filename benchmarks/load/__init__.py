"""The payments load generator behind `benchmarks/payments_load.py` (and `make bench`).

- `workload`: synthetic customers, the mix of flows, the requests of each arrival;
- `clients`: the HTTP clients that send them (aiohttp, httpx);
- `flows`: what one arrival does (create, then 3-D Secure, capture, refund...) and how
  each answer is judged;
- `openloop`: the fixed-schedule sender;
- `receiver`: the HTTP rule target that timestamps `payment.succeeded` (end-to-end latency);
- `target`: the server's set-up for a run (routing table, sandbox latency, the rule);
- `server`: a `paymesh serve` (and `paymesh sandbox`) of our own, and CPU/RSS from /proc;
- `stats`, `report`, `plots`, `progress`: figures, tables, JSON, PNGs, the progress bar;
- `bench`: one rate after another; `cli`: flags and `main`.
"""
