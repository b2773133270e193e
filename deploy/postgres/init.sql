-- The tables source-postgres streams in deploy/docker-compose.yml (TABLE_WHITELIST
-- users,orders,products), and a replication role for it. The connector creates its publication,
-- replication slot and snapshot-state table itself at start.
CREATE TABLE users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text NOT NULL,
    email      text UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name  text NOT NULL,
    price numeric(12, 2) NOT NULL
);

CREATE TABLE orders (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id),
    product_id bigint NOT NULL REFERENCES products (id),
    quantity   integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO users (name, email) VALUES ('Alice', 'alice@example.com'), ('Bob', 'bob@example.com');
INSERT INTO products (name, price) VALUES ('widget', 9.99), ('gadget', 24.50);
