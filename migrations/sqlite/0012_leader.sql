-- PostgreSQL's 0012 adds the `leader` lease and the `replicas` heartbeat several replicas
-- coordinate through. One SQLite file has one server process, which runs every background
-- duty itself, so SQLite's 0012 changes nothing: one number names one schema on both stores.
SELECT 1;
