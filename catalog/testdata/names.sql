-- Column names PostgreSQL derives for unnamed select-list entries; the
-- agreement test checks them against a live server.
CREATE TABLE t (a int, j jsonb, arr int[], d date);
CREATE VIEW derived AS
    SELECT j::text, 'x'::varchar, t.arr[1], (t.j)->'k', CAST(1 AS bigint),
           CASE WHEN true THEN d END, localtimestamp(2), xmlelement(name x),
           grouping(a), (SELECT a AS sub FROM t LIMIT 1), EXISTS (SELECT 1),
           ARRAY(SELECT 1), coalesce(a), greatest(a), nullif(a, 1),
           d::text COLLATE "C", current_user, session_user, current_schema,
           1::int, (SELECT * FROM (SELECT 3 AS three) s),
           lower(j ->> 'x')::text, array_agg(d)
    FROM t GROUP BY a, arr, j, d;
CREATE VIEW overrides AS
    SELECT CASE WHEN true THEN 1 ELSE a END, count(*) AS counted, d AS "Quoted Name"
    FROM t GROUP BY a, d;
CREATE VIEW valued AS VALUES (1, 'one'), (2, 'two');
CREATE VIEW set_ops AS
    SELECT a AS first FROM t INTERSECT SELECT 1 EXCEPT SELECT 2;
