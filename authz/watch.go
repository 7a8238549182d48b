package authz

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"
)

// defaultDebounce is how long a burst of file events must be quiet before
// Watch reloads: an editor's save is several events within milliseconds.
const defaultDebounce = 200 * time.Millisecond

// maxLoggedFindings bounds the findings one rejected reload logs.
const maxLoggedFindings = 20

// Watch reloads the policy whenever the model or policy file changes, until
// ctx ends; run it in its own goroutine. It watches the folders of both
// files rather than the files, because editors save by writing a new file
// and renaming it over the old one, which would end a watch on the file
// itself. A burst of events is debounced (Options.Debounce). Every interval
// (if > 0) it also compares the files' checksum with the last one it saw,
// which catches what events miss: network file systems, or a ConfigMap
// swapped in through a symlink elsewhere.
//
// onReload, if not nil, gets each swap and each rejected change; a change
// is rejected, and the old policy kept, when the new files do not load or
// lint with errors. Watch logs only through logger. It returns nil when ctx
// ends, and an error if it can neither receive file events nor poll.
func (e *Engine) Watch(ctx context.Context, logger zerolog.Logger, interval time.Duration, onReload func(ReloadResult)) error {
	if e.fromText {
		return fmt.Errorf("watch policy: %w", ErrNoFiles)
	}
	w := e.watchFolders(logger)
	if w == nil && interval <= 0 {
		return errors.New("watch policy: no file events and no polling interval")
	}
	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	if w != nil {
		defer w.Close()
		events, watchErrs = w.Events, w.Errors
	}
	var tick <-chan time.Time
	if interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	lastSeen := e.Policy().Version()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if e.concerns(ev) {
				logger.Debug().Str("file", ev.Name).Str("op", ev.Op.String()).Msg("policy file event")
				debounce.Reset(e.debounce())
			}
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			logger.Warn().Err(err).Msg("policy file watch error; periodic checks continue")
		case <-debounce.C:
			lastSeen = e.check(logger, lastSeen, onReload, debounce)
		case <-tick:
			lastSeen = e.check(logger, lastSeen, onReload, debounce)
		}
	}
}

// watchFolders starts fsnotify on the folders of both files, or returns nil
// (after saying why) when it cannot.
func (e *Engine) watchFolders(logger zerolog.Logger) *fsnotify.Watcher {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		logger.Warn().Err(err).Msg("policy file events unavailable; relying on periodic checks")
		return nil
	}
	added := 0
	for _, dir := range uniqueDirs(e.modelPath, e.policyPath) {
		if err := w.Add(dir); err != nil {
			logger.Warn().Err(err).Str("dir", dir).Msg("cannot watch policy folder; relying on periodic checks")
			continue
		}
		added++
	}
	if added == 0 {
		w.Close()
		return nil
	}
	return w
}

func uniqueDirs(paths ...string) []string {
	var dirs []string
	for _, p := range paths {
		if d := filepath.Dir(absPath(p)); !contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// concerns reports whether a file event may have changed one of the files:
// an event on either file, or on a "..name" entry, which is how Kubernetes
// swaps a mounted ConfigMap in at once.
func (e *Engine) concerns(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	name := absPath(ev.Name)
	return name == absPath(e.modelPath) || name == absPath(e.policyPath) ||
		strings.HasPrefix(filepath.Base(name), "..")
}

func (e *Engine) debounce() time.Duration {
	if e.opts.Debounce > 0 {
		return e.opts.Debounce
	}
	return defaultDebounce
}

// check reloads if the files differ from what was last seen, reports the
// outcome, and returns the new "last seen" state. A state is a version, or
// the read error, so a broken or missing file is reported once, not on
// every tick.
func (e *Engine) check(logger zerolog.Logger, lastSeen string, onReload func(ReloadResult), retry *time.Timer) string {
	state := e.diskState()
	if state == lastSeen {
		return lastSeen
	}
	res, err := e.Reload()
	switch {
	case errors.Is(err, ErrPolicyChanging):
		logger.Debug().Msg("policy files still changing; reloading once they settle")
		retry.Reset(e.debounce())
		return lastSeen
	case err != nil:
		ev := logger.Error().Err(err).Str("policy_version", res.OldVersion).Str("rejected_version", res.NewVersion)
		ev.Strs("findings", errorFindings(res.Findings)).Msg("policy change rejected; keeping the policy in force")
	case res.Swapped:
		logger.Info().Str("old_version", res.OldVersion).Str("policy_version", res.NewVersion).
			Int("rules_added", len(res.Added)).Int("rules_removed", len(res.Removed)).Msg("policy reloaded")
	default:
		return state // unchanged content, e.g. a save without edits
	}
	if onReload != nil {
		onReload(res)
	}
	return state
}

// diskState is the version of the files on disk, or the error reading them.
func (e *Engine) diskState() string {
	modelData, err := os.ReadFile(e.modelPath)
	if err != nil {
		return "error: " + err.Error()
	}
	policyData, err := os.ReadFile(e.policyPath)
	if err != nil {
		return "error: " + err.Error()
	}
	return versionOf(modelData, policyData)
}

func errorFindings(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		if f.Severity == SeverityError && len(out) < maxLoggedFindings {
			out = append(out, f.String())
		}
	}
	return out
}
