-- A read token's quota on the lookup services: requests per second and burst (NULL: none).
ALTER TABLE tokens ADD COLUMN rate_per_second BIGINT;
ALTER TABLE tokens ADD COLUMN burst BIGINT;
