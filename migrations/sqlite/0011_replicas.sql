-- PostgreSQL's 0011 adds the tables several replicas coordinate through (usage totals under a
-- row lock, commit receipts, the queue's rotation). One SQLite file has one server process,
-- which keeps that state in memory, so SQLite's 0011 changes nothing: it exists so one number
-- names one schema version on both stores.
SELECT 1;
