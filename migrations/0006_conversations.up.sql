-- Conversations of /v1/ask: each answer is a turn of one, and what it cost.
CREATE TABLE conversations (
    id         uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    title      text NOT NULL,
    turns      integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_tenant_created_idx ON conversations (tenant_id, created_at DESC, id DESC);

CREATE TABLE conversation_turns (
    conversation_id   uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    n                 integer NOT NULL,
    question          text NOT NULL,
    answer            text NOT NULL,
    citations         jsonb NOT NULL,
    provider          text NOT NULL,
    model             text NOT NULL,
    prompt_tokens     integer NOT NULL,
    completion_tokens integer NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, n)
);

-- One row per answer; deleting a conversation keeps what it cost.
CREATE TABLE chat_usage (
    tenant_id         uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    provider          text NOT NULL,
    model             text NOT NULL,
    prompt_tokens     integer NOT NULL,
    completion_tokens integer NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_usage_tenant_created_idx ON chat_usage (tenant_id, created_at);
