-- pgguard docker compose: logins and a few rows for the demo schema.
--
-- The postgres image runs this after demo/schema.sql, as the superuser, in
-- database postgres. Every name, address and number below is invented: each
-- BSN fails the eleven-test that real citizen service numbers pass, and the
-- IBANs carry the bank code DEMO, which no bank has.

SET password_encryption = 'scram-sha-256';

-- pgguard reads pg_catalog with a role of its own (PGGUARD_CATALOG_URL). It
-- needs nothing beyond CONNECT, which every role has on this database: it
-- is granted no table on purpose.
CREATE ROLE pgguard_catalog LOGIN PASSWORD 'demo';

-- One login per department application (the g rules of policy.csv), all
-- with the password demo. Each starts with every privilege on every table,
-- as in a database nobody has prepared; the compose file's grants service
-- then applies the policy's grants (pgguard grants --apply), which revoke
-- these and give each login's department only the columns it may use.
-- No TRIGGER or REFERENCES privilege, no CREATE.
CREATE ROLE hr_app LOGIN PASSWORD 'demo';
CREATE ROLE payroll_app LOGIN PASSWORD 'demo';
CREATE ROLE sales_app LOGIN PASSWORD 'demo';
CREATE ROLE finance_app LOGIN PASSWORD 'demo';
CREATE ROLE marketing_app LOGIN PASSWORD 'demo';
CREATE ROLE support_app LOGIN PASSWORD 'demo';

GRANT USAGE ON SCHEMA crm, hr TO hr_app, payroll_app, sales_app, finance_app, marketing_app, support_app;
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA crm, hr
    TO hr_app, payroll_app, sales_app, finance_app, marketing_app, support_app;

INSERT INTO crm.customers
    (id, first_name, last_name, email, phone, street, postal_code, city, birth_date, bsn, iban)
VALUES
    (1, 'Anna', 'de Vries', 'anna.devries1@example.nl', '0612345670', 'Dorpsstraat 12', '1234 AB', 'Zwolle', DATE '1978-04-02', '917400297', 'NL07DEMO0000000001'),
    (2, 'Bram', 'Jansen', 'bram.jansen2@example.nl', '0612345671', 'Kerkstraat 3', '2345 BC', 'Leiden', DATE '1985-11-23', '550473688', 'NL12DEMO0000000002'),
    (3, 'Carla', 'Visser', 'carla.visser3@example.nl', '0612345672', 'Molenweg 48', '3456 CD', 'Delft', DATE '1969-07-15', '139849165', 'NL33DEMO0000000003'),
    (4, 'Daan', 'Bakker', 'daan.bakker4@example.nl', '0612345673', 'Schoolstraat 7', '4567 DE', 'Arnhem', DATE '1992-01-30', '156471341', 'NL45DEMO0000000004'),
    (5, 'Emma', 'Smit', 'emma.smit5@example.nl', '0612345674', 'Stationsweg 101', '5678 EF', 'Haarlem', DATE '2001-09-09', '188319443', 'NL58DEMO0000000005'),
    (6, 'Finn', 'Mulder', 'finn.mulder6@example.nl', '0612345675', 'Julianastraat 19', '6789 FG', 'Groningen', DATE '1957-03-18', '673293803', 'NL61DEMO0000000006'),
    (7, 'Iris', 'de Boer', 'iris.deboer7@example.nl', '0612345676', 'Beatrixlaan 5', '7890 GH', 'Utrecht', DATE '1988-12-01', '864270269', 'NL74DEMO0000000007'),
    (8, 'Jesse', 'Bos', 'jesse.bos8@example.nl', '0612345677', 'Nieuwstraat 66', '8901 HJ', 'Eindhoven', DATE '1974-06-27', '617319776', 'NL86DEMO0000000008');

INSERT INTO crm.orders (id, customer_id, ordered_at, total_amount, status, shipping_address)
VALUES
    (1, 1, TIMESTAMPTZ '2026-01-05 10:12:00+01', 49.95, 'shipped', 'Dorpsstraat 12'),
    (2, 1, TIMESTAMPTZ '2026-02-11 14:40:00+01', 129.00, 'paid', 'Dorpsstraat 12'),
    (3, 2, TIMESTAMPTZ '2026-01-19 09:03:00+01', 18.50, 'returned', 'Kerkstraat 3'),
    (4, 3, TIMESTAMPTZ '2026-03-02 16:27:00+01', 240.00, 'new', 'Molenweg 48'),
    (5, 3, TIMESTAMPTZ '2026-03-03 08:55:00+01', 12.99, 'paid', 'Molenweg 48'),
    (6, 4, TIMESTAMPTZ '2026-02-21 19:30:00+01', 75.25, 'shipped', 'Schoolstraat 7'),
    (7, 5, TIMESTAMPTZ '2026-03-14 11:11:00+01', 310.40, 'paid', 'Stationsweg 101'),
    (8, 6, TIMESTAMPTZ '2026-01-28 13:05:00+01', 5.00, 'shipped', 'Julianastraat 19'),
    (9, 7, TIMESTAMPTZ '2026-02-02 17:45:00+01', 64.10, 'new', 'Beatrixlaan 5'),
    (10, 8, TIMESTAMPTZ '2026-03-20 10:00:00+01', 99.99, 'paid', 'Nieuwstraat 66'),
    (11, 8, TIMESTAMPTZ '2026-03-21 10:30:00+01', 15.75, 'returned', 'Nieuwstraat 66'),
    (12, 2, TIMESTAMPTZ '2026-03-25 12:20:00+01', 42.00, 'shipped', 'Kerkstraat 3');

INSERT INTO hr.employees
    (id, first_name, last_name, email, phone, bsn, iban, birth_date, hired_on, department)
VALUES
    (1, 'Grietje', 'Meijer', 'grietje1@corp.example', '0687654320', '186746134', 'NL19DEMO0000000101', DATE '1971-05-14', DATE '2008-03-01', 'hr'),
    (2, 'Hugo', 'Dekker', 'hugo2@corp.example', '0687654321', '772008149', 'NL22DEMO0000000102', DATE '1983-10-08', DATE '2012-09-01', 'sales'),
    (3, 'Lotte', 'Peters', 'lotte3@corp.example', '0687654322', '534875846', 'NL37DEMO0000000103', DATE '1990-02-27', DATE '2017-01-01', 'finance'),
    (4, 'Milan', 'Hendriks', 'milan4@corp.example', '0687654323', '697497772', 'NL40DEMO0000000104', DATE '1995-08-19', DATE '2021-06-01', 'marketing'),
    (5, 'Noor', 'van Dijk', 'noor5@corp.example', '0687654324', '674755296', 'NL53DEMO0000000105', DATE '1987-12-03', DATE '2015-04-01', 'customer_service'),
    (6, 'Thijs', 'Brouwer', 'thijs6@corp.example', '0687654325', '945672480', 'NL66DEMO0000000106', DATE '1979-04-25', DATE '2010-11-01', 'sales');

INSERT INTO hr.salaries (employee_id, gross_monthly, bank_account)
SELECT id, 3100 + id * 415, iban FROM hr.employees;

-- Health data (GDPR art. 9): only hr, for sick_leave_admin, may read it.
INSERT INTO hr.sick_leave (employee_id, start_date, end_date, diagnosis_note)
VALUES
    (2, DATE '2026-02-09', DATE '2026-02-13', 'influenza'),
    (5, DATE '2026-03-16', NULL, 'back injury');
