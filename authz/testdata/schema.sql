-- pgguard demo schema: customer data (crm) and employee data (hr).
-- Which column holds which kind of personal data is declared in policy.csv
-- (g2 rules), not here.

CREATE SCHEMA crm;
CREATE SCHEMA hr;

CREATE TABLE crm.customers (
    id          bigint PRIMARY KEY,
    first_name  text NOT NULL,
    last_name   text NOT NULL,
    email       text,
    phone       text,
    street      text,
    postal_code text,
    city        text,
    birth_date  date,
    bsn         char(9),
    iban        text
);

CREATE TABLE crm.orders (
    id               bigint PRIMARY KEY,
    customer_id      bigint NOT NULL REFERENCES crm.customers (id),
    ordered_at       timestamptz NOT NULL,
    total_amount     numeric(12, 2) NOT NULL,
    status           text NOT NULL,
    shipping_address text
);

CREATE TABLE hr.employees (
    id          bigint PRIMARY KEY,
    first_name  text NOT NULL,
    last_name   text NOT NULL,
    email       text,
    phone       text,
    bsn         char(9),
    iban        text,
    birth_date  date,
    hired_on    date NOT NULL,
    department  text NOT NULL
);

CREATE TABLE hr.salaries (
    employee_id   bigint PRIMARY KEY REFERENCES hr.employees (id),
    gross_monthly numeric(10, 2) NOT NULL,
    bank_account  text
);

-- Health data: a special category of personal data (GDPR art. 9).
CREATE TABLE hr.sick_leave (
    employee_id    bigint NOT NULL REFERENCES hr.employees (id),
    start_date     date NOT NULL,
    end_date       date,
    diagnosis_note text,
    PRIMARY KEY (employee_id, start_date)
);
