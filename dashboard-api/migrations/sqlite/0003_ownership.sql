-- Who may change an API besides its owner and the administrators: analyst names (JSON array).
ALTER TABLE apis ADD COLUMN editors TEXT NOT NULL DEFAULT '[]';

-- Ceilings an administrator granted this API above the server's `[dashboard.ceilings]` (JSON
-- object, one key per guard limit).
ALTER TABLE apis ADD COLUMN ceilings TEXT NOT NULL DEFAULT '{}';

-- The API was deleted and its edges must drop everything of it (versions, keys, tokens). Set
-- by the delete; cleared once every edge has retired it, when version numbers restart at 1.
-- The row itself stays: its fence and access revision keep growing across a re-creation, so
-- an edge never takes an older operation's commit or access set for a newer one's.
ALTER TABLE api_state ADD COLUMN retiring BOOLEAN NOT NULL DEFAULT FALSE;
