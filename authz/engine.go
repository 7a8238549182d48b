package authz

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// Engine holds the policy in force and replaces it when the files change.
// Readers call Policy() once per statement and use that *Policy for the
// whole decision, so a statement is never judged by half of two policies.
type Engine struct {
	modelPath, policyPath string
	opts                  Options

	current atomic.Pointer[Policy]
	reload  sync.Mutex // one reload at a time: SIGHUP and the watcher may race
}

// ReloadResult describes one reload attempt.
type ReloadResult struct {
	OldVersion string    // the version in force before
	NewVersion string    // the version of the files read; in force only if Swapped
	Swapped    bool      // the new policy replaced the old one
	Added      []string  // rules in the new policy only, as text
	Removed    []string  // rules in the old policy only, as text
	Findings   []Finding // lint findings of the files read
	Err        error     // why the files were rejected; the old policy stays
}

// NewEngine loads the files and fails if they do not load or lint with errors.
func NewEngine(modelPath, policyPath string, opts Options) (*Engine, error) {
	p, err := Load(modelPath, policyPath, opts)
	if err != nil {
		return nil, err
	}
	e := &Engine{modelPath: modelPath, policyPath: policyPath, opts: opts}
	e.current.Store(p)
	return e, nil
}

// Policy returns the policy in force.
func (e *Engine) Policy() *Policy { return e.current.Load() }

// Reload reads the files again and swaps the policy in if they load and
// lint without errors. Unchanged files are a no-op (Swapped false, no
// error). On failure the old policy stays, and the error (a *LintError for
// lint errors) is returned and also set in the result.
func (e *Engine) Reload() (ReloadResult, error) {
	e.reload.Lock()
	defer e.reload.Unlock()
	old := e.current.Load()
	res := ReloadResult{OldVersion: old.version, NewVersion: old.version}
	modelData, policyData, err := e.read()
	if err != nil {
		res.Err = err
		return res, err
	}
	res.NewVersion = versionOf(modelData, policyData)
	if res.NewVersion == old.version {
		return res, nil
	}
	p, err := loadBytes(e.modelPath, modelData, e.policyPath, policyData, e.opts)
	if err != nil {
		var lint *LintError
		if errors.As(err, &lint) {
			res.Findings = lint.Findings
		}
		res.Err = fmt.Errorf("reload: keeping policy %s: %w", old.version, err)
		return res, res.Err
	}
	e.current.Store(p)
	res.Swapped, res.Findings = true, p.Findings()
	res.Added, res.Removed = diffSorted(p.rules, old.rules)
	return res, nil
}

// read reads both files.
func (e *Engine) read() (modelData, policyData []byte, err error) {
	if modelData, err = os.ReadFile(e.modelPath); err != nil {
		return nil, nil, fmt.Errorf("reload model %s: %w", e.modelPath, err)
	}
	if policyData, err = os.ReadFile(e.policyPath); err != nil {
		return nil, nil, fmt.Errorf("reload policy %s: %w", e.policyPath, err)
	}
	return modelData, policyData, nil
}

// diffSorted returns what is only in a and what is only in b, both sorted.
func diffSorted(a, b []string) (onlyA, onlyB []string) {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			onlyA = append(onlyA, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			onlyB = append(onlyB, b[j])
			j++
		default:
			i++
			j++
		}
	}
	return onlyA, onlyB
}
