// Package demo holds the demonstration database of `pgguard demo`: a
// realistic schema of customer and employee data, invented rows, and one
// login per department application.
package demo

import (
	_ "embed"
	"fmt"
	"strings"
)

// Schema is the DDL of the demo database (schemas crm and hr).
//
//go:embed schema.sql
var Schema string

// Password is the password of every demo login.
const Password = "demo"

// Login is one department application's database login and the purpose it
// declares in the demo.
type Login struct {
	User, Department, Purpose string
}

// Logins are the department applications of the example policy.
var Logins = []Login{
	{"hr_app", "hr", "personnel_admin"},
	{"payroll_app", "payroll_clerk (hr)", "payroll"},
	{"sales_app", "sales", "order_fulfilment"},
	{"finance_app", "finance", "invoicing"},
	{"marketing_app", "marketing", "newsletter"},
	{"support_app", "customer_service", "customer_support"},
}

// SetupSQL is everything that loads the demo database after Schema: rows
// and logins. It grants every login everything, as an unprepared database
// might; the demo then applies the policy's grants (package grants), which
// take away what each login's department may not use.
func SetupSQL() string {
	var b strings.Builder
	b.WriteString(dataSQL(2000, 400))
	b.WriteString("SET password_encryption = 'scram-sha-256';\n")
	for _, l := range Logins {
		fmt.Fprintf(&b, "CREATE ROLE %s LOGIN PASSWORD '%s';\n", l.User, Password)
		fmt.Fprintf(&b, "GRANT USAGE ON SCHEMA crm, hr TO %s; GRANT ALL ON ALL TABLES IN SCHEMA crm, hr TO %s;\n", l.User, l.User)
	}
	return b.String()
}
