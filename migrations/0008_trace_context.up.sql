-- The trace context (W3C traceparent and tracestate) of the request that
-- created a job. Every task of the job carries it, whichever process builds
-- the task from the row, so a document's tasks continue its upload's trace.
-- NULL when tracing is off.
ALTER TABLE jobs ADD COLUMN trace_context jsonb;
