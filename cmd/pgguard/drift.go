package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgguard/pgguard/alert"
	"github.com/pgguard/pgguard/grants"
)

// maxDriftListed bounds the differences one grants_drift alert lists.
const maxDriftListed = 50

// watchGrants compares the users' live privileges with the policy's grants
// every interval (--grants-check), exports the count and raises a
// grants_drift alert whenever the differences change, so a hand-made GRANT
// that opens a hole is noticed within one interval.
func (a *app) watchGrants(ctx context.Context, catalogURL string, interval time.Duration) {
	cfg, err := pgx.ParseConfig(catalogURL)
	if err != nil {
		a.log.Error().Err(err).Msg("grants check: the catalog URL does not parse")
		return
	}
	if cfg.Database == "" {
		cfg.Database = cfg.User // as PostgreSQL connects without one
	}
	last := ""
	for {
		last = a.checkGrantsOnce(ctx, cfg, last)
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// checkGrantsOnce runs one comparison; last identifies the differences the
// previous one found, and the result this one's.
func (a *app) checkGrantsOnce(ctx context.Context, cfg *pgx.ConnConfig, last string) string {
	drift, err := a.grantsDrift(ctx, cfg)
	if err != nil {
		a.log.Warn().Err(err).Msg("grants check failed")
		return last
	}
	a.metrics.GrantsDrift.Set(float64(len(drift)))
	var lines []string
	for _, d := range drift {
		lines = append(lines, d.String())
	}
	key := strings.Join(lines, "\n")
	if key == last {
		return key
	}
	if len(drift) == 0 {
		a.log.Info().Str("database", cfg.Database).Msg("grants match the policy again")
		return key
	}
	a.alerts.Emit(driftEvent(cfg.Database, drift, a.engine.Policy().Version()))
	return key
}

// grantsDrift compiles the policy over the database's catalog and compares.
func (a *app) grantsDrift(ctx context.Context, cfg *pgx.ConnConfig) ([]grants.Drift, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	snap, err := a.catalog.Get(ctx, cfg.Database)
	if err != nil {
		return nil, err
	}
	plan, err := grants.Compile(a.engine.Policy(), snap, grants.Options{PurposeRoles: a.purposeRoles})
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	return plan.Check(ctx, conn)
}

// driftEvent describes the differences: holes first, at most
// maxDriftListed of them.
func driftEvent(database string, drift []grants.Drift, policyVersion string) alert.Event {
	holes := 0
	var denied []alert.Denial
	for _, d := range drift {
		if d.Extra {
			holes++
		}
		if len(denied) < maxDriftListed {
			reason := "allowed by the policy, but not held"
			if d.Extra {
				reason = "held, but not allowed by the policy"
			}
			denied = append(denied, alert.Denial{Column: d.Column, Act: d.Privilege, Reason: d.User + ": " + reason})
		}
	}
	return alert.Event{
		Kind: alert.KindGrantsDrift, Database: database, Denied: denied, PolicyVersion: policyVersion,
		Error: fmt.Sprintf("%d differences between the users' privileges and the policy: %d held but not allowed, %d allowed but not held",
			len(drift), holes, len(drift)-holes),
	}
}
