package policystore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/pgguard/pgguard/authz"
)

// Channel is the LISTEN/NOTIFY channel a push notifies, with the new
// version number as payload.
const Channel = "pgguard_policy"

// setupLock is the advisory lock key that serialises schema creation and
// pushes, so that two pushes at once get consecutive versions and two
// first pushes do not race on CREATE TABLE IF NOT EXISTS (which is not safe
// against itself).
const setupLock = 0x70676775617264 // "pgguard"

// ErrEmpty is returned when the store holds no policy yet, or its tables do
// not exist: nothing was pushed.
var ErrEmpty = errors.New("the policy store holds no policy: run `pgguard policy push --to URL` first")

// Record is one version of the policy as the store holds it.
type Record struct {
	// Version numbers pushes 1, 2, 3...; the newest is in force.
	Version int64
	// Checksum is authz.Checksum of Model and Policy.
	Checksum string
	// ModelName and PolicyName are the base names of the files pushed; lint
	// findings and explanations name them.
	ModelName, PolicyName string
	// Model and Policy are the texts of the files, byte for byte.
	Model, Policy string
	// PushedAt is the server's time of the push.
	PushedAt time.Time
	// PushedBy is the database role that pushed.
	PushedBy string
}

// Short is the policy version a replica enforces as alerts and
// pgguard_policy_version name it: the checksum's first 12 digits.
func (r Record) Short() string {
	if len(r.Checksum) < 12 {
		return r.Checksum
	}
	return r.Checksum[:12]
}

const schemaSQL = `
CREATE SCHEMA IF NOT EXISTS pgguard;
CREATE TABLE IF NOT EXISTS pgguard.policy (
	version     bigint PRIMARY KEY CHECK (version > 0),
	checksum    text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),
	model_name  text NOT NULL,
	model       text NOT NULL,
	policy_name text NOT NULL,
	policy      text NOT NULL,
	pushed_at   timestamptz NOT NULL DEFAULT now(),
	pushed_by   text NOT NULL DEFAULT current_user
);
CREATE TABLE IF NOT EXISTS pgguard.policy_replicas (
	replica_id text PRIMARY KEY,
	version    bigint NOT NULL,
	checksum   text NOT NULL,
	started_at timestamptz NOT NULL,
	last_seen  timestamptz NOT NULL,
	expires_at timestamptz NOT NULL
);`

// Setup creates the schema and tables if they do not exist. It is safe to
// run at once from several processes. Push runs it.
func Setup(ctx context.Context, conn *pgx.Conn) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		return setupTx(ctx, tx)
	})
}

func setupTx(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(setupLock)); err != nil {
		return fmt.Errorf("policy store: lock: %w", err)
	}
	// Once the tables exist, no DDL runs: CREATE ... IF NOT EXISTS checks
	// the CREATE privilege before it looks, and a pushing role needs no
	// more than INSERT and SELECT on pgguard.policy.
	var exist bool
	err := tx.QueryRow(ctx, "SELECT to_regclass('pgguard.policy') IS NOT NULL AND to_regclass('pgguard.policy_replicas') IS NOT NULL").Scan(&exist)
	if err != nil {
		return fmt.Errorf("policy store: look for the tables: %w", err)
	}
	if exist {
		return nil
	}
	if _, err := tx.Exec(ctx, schemaSQL); err != nil {
		return fmt.Errorf("policy store: create tables: %w", err)
	}
	return nil
}

// Push stores a model and policy as the next version and notifies Channel,
// both in one transaction, so a replica that sees the notification finds
// the row. Pushing the texts of the newest version again changes nothing
// and returns that version with created false. Push does not lint: the
// caller does (pgguard policy push refuses lint errors before it).
func Push(ctx context.Context, conn *pgx.Conn, modelName, model, policyName, policy string) (rec Record, created bool, err error) {
	sum := authz.Checksum([]byte(model), []byte(policy))
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := setupTx(ctx, tx); err != nil {
			return err
		}
		latest, err := latest(ctx, tx)
		switch {
		case errors.Is(err, ErrEmpty):
		case err != nil:
			return err
		case latest.Checksum == sum && latest.ModelName == modelName && latest.PolicyName == policyName:
			rec = latest
			return nil
		}
		err = tx.QueryRow(ctx, `
			INSERT INTO pgguard.policy (version, checksum, model_name, model, policy_name, policy)
			VALUES ((SELECT coalesce(max(version), 0) + 1 FROM pgguard.policy), $1, $2, $3, $4, $5)
			RETURNING version, pushed_at, pushed_by`,
			sum, modelName, model, policyName, policy).Scan(&rec.Version, &rec.PushedAt, &rec.PushedBy)
		if err != nil {
			return fmt.Errorf("policy store: insert: %w", err)
		}
		if _, err := tx.Exec(ctx, "SELECT pg_notify($1, $2)", Channel, fmt.Sprint(rec.Version)); err != nil {
			return fmt.Errorf("policy store: notify: %w", err)
		}
		rec.Checksum, rec.ModelName, rec.Model, rec.PolicyName, rec.Policy = sum, modelName, model, policyName, policy
		created = true
		return nil
	})
	return rec, created, err
}

// querier is what reads need: a connection or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Latest returns the newest version, or ErrEmpty.
func Latest(ctx context.Context, conn *pgx.Conn) (Record, error) {
	return latest(ctx, conn)
}

func latest(ctx context.Context, q querier) (Record, error) {
	var r Record
	err := q.QueryRow(ctx, `
		SELECT version, checksum, model_name, model, policy_name, policy, pushed_at, pushed_by
		FROM pgguard.policy ORDER BY version DESC LIMIT 1`).
		Scan(&r.Version, &r.Checksum, &r.ModelName, &r.Model, &r.PolicyName, &r.Policy, &r.PushedAt, &r.PushedBy)
	if err != nil {
		return Record{}, emptyOr(err)
	}
	return r, nil
}

// head returns the newest version's number and checksum only: what a
// replica compares with its own on every heartbeat, without the texts.
func head(ctx context.Context, q querier) (version int64, checksum string, err error) {
	err = q.QueryRow(ctx, `SELECT version, checksum FROM pgguard.policy ORDER BY version DESC LIMIT 1`).Scan(&version, &checksum)
	if err != nil {
		return 0, "", emptyOr(err)
	}
	return version, checksum, nil
}

// emptyOr turns "no row" and "no table" into ErrEmpty and wraps the rest.
func emptyOr(err error) error {
	var pe *pgconn.PgError
	if errors.Is(err, pgx.ErrNoRows) || (errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "3F000")) {
		return ErrEmpty
	}
	return fmt.Errorf("policy store: read: %w", err)
}

// Heartbeat is what one replica reports about itself.
type Heartbeat struct {
	// ReplicaID names the replica; unique among the replicas of a store.
	ReplicaID string
	// Version and Checksum are what it enforces (Version 0: a policy not
	// from the store).
	Version  int64
	Checksum string
	// StartedAt is when the replica started.
	StartedAt time.Time
	// TTL is how long the row counts as live without another heartbeat.
	TTL time.Duration
}

// retainExpired is how long an expired heartbeat row is kept, so status
// shows a replica that went away before it is forgotten.
const retainExpired = 24 * time.Hour

// Beat upserts the replica's row, expiring TTL from now by the server's
// clock (one clock for every replica), and deletes rows expired for more
// than a day.
func Beat(ctx context.Context, q querier, h Heartbeat) error {
	_, err := q.Exec(ctx, `
		WITH gone AS (DELETE FROM pgguard.policy_replicas WHERE expires_at < now() - $6::interval)
		INSERT INTO pgguard.policy_replicas AS r (replica_id, version, checksum, started_at, last_seen, expires_at)
		VALUES ($1, $2, $3, $4, now(), now() + $5::interval)
		ON CONFLICT (replica_id) DO UPDATE SET version = excluded.version, checksum = excluded.checksum,
			started_at = excluded.started_at, last_seen = excluded.last_seen, expires_at = excluded.expires_at`,
		h.ReplicaID, h.Version, h.Checksum, h.StartedAt, h.TTL, retainExpired)
	if err != nil {
		return fmt.Errorf("policy store: heartbeat: %w", emptyOr(err))
	}
	return nil
}

// Replica is one replica's last heartbeat.
type Replica struct {
	ID               string
	Version          int64
	Checksum         string
	StartedAt        time.Time
	LastSeen         time.Time
	ExpiresAt        time.Time
	Live             bool // ExpiresAt is still ahead, by the server's clock
	Current          bool // holds the newest version's checksum
	SinceLastSeenSec float64
}

// Replicas lists the replicas that reported, live ones first, each with
// whether it holds the newest version, and that version (zero Record and
// ErrEmpty when nothing was pushed).
func Replicas(ctx context.Context, conn *pgx.Conn) ([]Replica, Record, error) {
	newest, err := latest(ctx, conn)
	if err != nil {
		return nil, Record{}, err
	}
	rows, err := conn.Query(ctx, `
		SELECT replica_id, version, checksum, started_at, last_seen, expires_at, expires_at > now(),
			extract(epoch FROM now() - last_seen)::float8
		FROM pgguard.policy_replicas ORDER BY expires_at > now() DESC, replica_id`)
	if err != nil {
		return nil, newest, fmt.Errorf("policy store: list replicas: %w", emptyOr(err))
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Replica, error) {
		var r Replica
		err := row.Scan(&r.ID, &r.Version, &r.Checksum, &r.StartedAt, &r.LastSeen, &r.ExpiresAt, &r.Live, &r.SinceLastSeenSec)
		r.Current = r.Checksum == newest.Checksum
		return r, err
	})
	if err != nil {
		return nil, newest, fmt.Errorf("policy store: list replicas: %w", err)
	}
	return out, newest, nil
}
