DROP TABLE IF EXISTS chunks, outbox, job_events, job_batches, jobs, documents, api_keys, tenants;
