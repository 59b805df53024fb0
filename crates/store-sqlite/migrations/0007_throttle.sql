-- Rate limits every node sees (failed logins per username and per source
-- address, device-code requests and user-code guesses per address and per
-- realm): one fixed window of hits per key.
CREATE TABLE throttle (
    key TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    hits INTEGER NOT NULL
);
CREATE INDEX throttle_by_window ON throttle (window_start);
