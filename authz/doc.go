// Package authz decides, from a Casbin model and policy, whether a user may
// read or write the columns a statement touches for the purpose declared.
//
// The policy (see model.conf and policy.csv at the repository root) links
// users to departments and roles (g), column patterns to data categories
// (g2) and purposes to parent purposes (g3), and allows or denies a subject
// an act on a category or column pattern for a purpose (p). Deny wins, and
// a classified column without an allow is denied.
//
// Policy is an immutable loaded policy whose decisions are cached inside it;
// Engine holds the policy in force behind an atomic pointer and replaces it
// on Reload or from Watch, only when the new files load and lint cleanly.
// Lint reports mistakes Casbin itself would swallow silently, with file and
// line. ParseExpectations reads the test file of "pgguard policy test".
package authz
