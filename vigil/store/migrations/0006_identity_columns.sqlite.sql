-- The identity filters of a search (ip=, actor_name=, actor_email=): context.ip as 16 bytes that sort as the
-- addresses do (IPv4 as IPv4-mapped IPv6, so a CIDR block is one range of keys), and the actor's name and e-mail
-- case-folded. This migration's Python step (vigil.store.backfill) fills them from the stored events; every
-- append writes them from then on.
ALTER TABLE events ADD COLUMN ip BLOB;
ALTER TABLE events ADD COLUMN actor_name TEXT;
ALTER TABLE events ADD COLUMN actor_email TEXT;
