DROP TABLE IF EXISTS chat_usage;
DROP TABLE IF EXISTS conversation_turns;
DROP TABLE IF EXISTS conversations;
