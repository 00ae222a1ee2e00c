DROP TABLE IF EXISTS webhook_attempts;
DROP TABLE IF EXISTS webhook_deliveries;
DROP TABLE IF EXISTS webhook_events;
DROP TABLE IF EXISTS document_callbacks;
DROP TABLE IF EXISTS webhook_callback_secrets;
DROP TABLE IF EXISTS webhook_endpoints;
