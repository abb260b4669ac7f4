-- Schema 5: what the instances sharing the database know about the push
-- services, so that one instance's finding serves all (store/postgres,
-- shared.go; design.md §10).

-- Push hosts whose circuit is open (tilecast.Breaker): pushes to host wait
-- until probe_at, when one probe goes; a successful probe deletes the row.
-- Rows a day past probe_at are dropped by the next open.
CREATE TABLE push_hosts (
    host     text COLLATE "C" PRIMARY KEY,
    probe_at timestamptz NOT NULL,
    opened   timestamptz NOT NULL
);

-- WNS access tokens (notify/wns.TokenSource), one per credentials: key is
-- a hash of the client id and token URL, never the secret. token is a
-- bearer secret for WNS until expires; renew_at is when an instance asks
-- for the next one. A token WNS refused (401) is deleted by value, so a
-- newer one another instance saved stays.
CREATE TABLE wns_tokens (
    key      text COLLATE "C" PRIMARY KEY,
    token    text NOT NULL,
    expires  timestamptz NOT NULL,
    renew_at timestamptz NOT NULL,
    saved    timestamptz NOT NULL
);
