// Package replicatest runs several pgguard processes behind HAProxy (TCP
// mode) against a throwaway PostgreSQL that is also their policy store,
// and checks what an operator of several replicas relies on: a pushed
// revocation in force on every replica within a second, cancel requests
// that reach their backend through any replica, and a policy store outage
// that loses no policy. It holds only tests and their helpers; the
// pgguard binary is built once per test run.
package replicatest
