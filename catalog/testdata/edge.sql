-- Statements that reshape a schema after creating it. Valid PostgreSQL: the
-- agreement test applies it to a live database and compares.
CREATE SCHEMA staging
    CREATE TABLE raw (id int, payload text)
    CREATE VIEW raw_ids AS SELECT id FROM raw;
SET search_path TO staging, public;

-- Inheritance: local and inherited columns through DROP, ONLY, RENAME.
CREATE TABLE base (a int, b int, c int);
CREATE TABLE kid (d int) INHERITS (base);
CREATE TABLE own_b (b int, e int) INHERITS (base);
ALTER TABLE base DROP COLUMN b;
ALTER TABLE ONLY base DROP COLUMN c;
ALTER TABLE base RENAME COLUMN a TO alpha;
ALTER TABLE kid NO INHERIT base;
CREATE TABLE adopt (alpha int, z int);
ALTER TABLE adopt INHERIT base;
ALTER TABLE base ADD COLUMN added int;
ALTER TABLE base ADD COLUMN IF NOT EXISTS added int;
ALTER TABLE base DROP COLUMN IF EXISTS nonexistent;
ALTER TABLE IF EXISTS nothing_here ADD COLUMN x int;
CREATE TABLE IF NOT EXISTS base (other int);

-- Renames, moves and drops.
CREATE TABLE old_name (x int);
ALTER TABLE old_name RENAME TO new_name;
ALTER TABLE new_name SET SCHEMA public;
CREATE TABLE dropme (x int);
DROP TABLE dropme;
DROP TABLE IF EXISTS never_existed;
CREATE SCHEMA tmp;
CREATE TABLE tmp.t (x int);
CREATE FUNCTION tmp.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
DROP SCHEMA tmp CASCADE;
CREATE SCHEMA renamed_from;
CREATE TABLE renamed_from.t (x int);
ALTER SCHEMA renamed_from RENAME TO renamed_to;

-- Views whose columns come from stars, joins, CTEs and set operations.
CREATE RECURSIVE VIEW countdown (n) AS
    VALUES (3) UNION ALL SELECT n - 1 FROM countdown WHERE n > 0;
CREATE VIEW rec AS SELECT * FROM json_to_record('{"a":1}') AS r(a int, b text);
CREATE VIEW joined AS SELECT * FROM kid NATURAL JOIN adopt;
CREATE VIEW aliased_join AS
    SELECT j.* FROM (base JOIN adopt USING (alpha)) AS j (q, r, s);
CREATE VIEW ctes AS
    WITH a AS (SELECT 1 AS one), b AS (SELECT * FROM a)
    SELECT * FROM b, LATERAL (SELECT 2 AS two) l;
CREATE VIEW unioned AS SELECT alpha AS u FROM base UNION SELECT z FROM adopt;
CREATE VIEW sampled AS SELECT * FROM base TABLESAMPLE SYSTEM (50);
CREATE MATERIALIZED VIEW mv (renamed) AS SELECT alpha FROM base WITH DATA;
CREATE OR REPLACE VIEW raw_ids AS SELECT id, payload FROM raw;
CREATE TABLE "Weird ""Quoted"" Name" ("Col ""1""" int);
CREATE TEMP TABLE session_only (x int);

-- Where unqualified names go.
RESET search_path;
CREATE TABLE in_public (x int);
SELECT pg_catalog.set_config('search_path', 'staging', false);
CREATE TABLE via_set_config (x int);
