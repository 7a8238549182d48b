// Package policystore keeps pgguard's policy in a PostgreSQL database, so
// that several pgguard replicas enforce one policy and an operator can see
// which version each of them holds.
//
// The store holds the model and policy texts exactly as the files hold them,
// one row per pushed version, rather than Casbin's rule rows: comments,
// order and lint findings' line numbers survive, the checksum a replica
// reports is the one `sha256sum` of the files' framing gives
// (authz.Checksum), and a version is swapped in whole, never rule by rule.
// A push notifies Channel; replicas LISTEN on it (Watcher) and also compare
// the newest version with theirs on every (re)connection and heartbeat, so a
// push made while a replica was away is not missed. Each replica upserts a
// heartbeat row that expires, which Replicas lists.
//
// Tables live in the schema "pgguard": policy (version, checksum, texts,
// pushed_at, pushed_by) and policy_replicas (replica_id, version, checksum,
// last_seen, expires_at). Push creates them; replicas only read the first
// and write their own row in the second.
//
// The package does not log by itself except through the logger a Watcher
// is given.
package policystore
