package authz

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Engine holds the policy in force and replaces it when the files change.
// Readers call Policy() once per statement and use that *Policy for the
// whole decision, so a statement is never judged by half of two policies.
type Engine struct {
	modelPath, policyPath string
	opts                  Options

	current  atomic.Pointer[Policy]
	reload   sync.Mutex // one reload at a time: SIGHUP and the watcher may race
	fromText bool       // made by NewEngineFromText: no files to reload
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

// NewEngineFromText loads a model and policy held in memory, as the policy
// store hands them out, and fails as NewEngine does. modelName and
// policyName are the names findings and explanations give (the files they
// were pushed from). Such an engine has no files: Reload fails and Watch
// returns an error; new texts come in through Swap.
func NewEngineFromText(modelName string, modelData []byte, policyName string, policyData []byte, opts Options) (*Engine, error) {
	p, err := loadBytes(modelName, modelData, policyName, policyData, opts)
	if err != nil {
		return nil, err
	}
	e := &Engine{opts: opts, fromText: true}
	e.current.Store(p)
	return e, nil
}

// ErrNoFiles is returned by Reload, and by Watch, on an engine made with
// NewEngineFromText: it has no files to read again.
var ErrNoFiles = errors.New("policy was not loaded from files")

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
	if e.fromText {
		res.Err = fmt.Errorf("reload: %w", ErrNoFiles)
		return res, res.Err
	}
	modelData, policyData, err := e.readSettled()
	if err != nil {
		res.Err = err
		return res, err
	}
	return e.swapLocked(old, e.modelPath, modelData, e.policyPath, policyData)
}

// Swap puts a model and policy held in memory in force, as Reload does with
// the files: the same checks, the same result, and unchanged content is a
// no-op. modelName and policyName are the names findings give. The policy
// store's watcher calls it with each version pushed.
func (e *Engine) Swap(modelName string, modelData []byte, policyName string, policyData []byte) (ReloadResult, error) {
	e.reload.Lock()
	defer e.reload.Unlock()
	return e.swapLocked(e.current.Load(), modelName, modelData, policyName, policyData)
}

// swapLocked loads the texts and swaps them in unless they are what old
// holds. The caller holds e.reload.
func (e *Engine) swapLocked(old *Policy, modelName string, modelData []byte, policyName string, policyData []byte) (ReloadResult, error) {
	res := ReloadResult{OldVersion: old.version, NewVersion: versionOf(modelData, policyData)}
	if res.NewVersion == old.version {
		return res, nil
	}
	p, err := loadBytes(modelName, modelData, policyName, policyData, e.opts)
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

// ErrPolicyChanging is returned by Reload while the files are still being
// written: two reads a settle period apart differed. The old policy stays;
// Watch tries again once the files have been quiet.
var ErrPolicyChanging = errors.New("policy files are still being written")

// readSettled reads both files twice, Options.Settle apart, and returns
// them only if nothing changed in between. An editor that truncates and
// then writes, or a copy in progress, shows a partial file for a moment;
// loading that moment could drop deny rules or classifications.
func (e *Engine) readSettled() (modelData, policyData []byte, err error) {
	modelData, policyData, err = e.read()
	if err != nil {
		return nil, nil, err
	}
	time.Sleep(e.opts.settle())
	m2, p2, err := e.read()
	if err != nil {
		return nil, nil, err
	}
	if !bytes.Equal(modelData, m2) || !bytes.Equal(policyData, p2) {
		return nil, nil, fmt.Errorf("reload policy %s: %w", e.policyPath, ErrPolicyChanging)
	}
	return modelData, policyData, nil
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

// Change is what a swap changed, as the security team reads it: columns
// classified or declassified, rules added or removed, and whether any of it
// can give someone access they did not have.
type Change struct {
	Classified   []string // g2 rules added: "pattern -> category"
	Declassified []string // g2 rules removed
	RulesAdded   []string // p, g and g3 rules added, as text
	RulesRemoved []string // p, g and g3 rules removed
	// Widens lists the changes that may open access: a declassified column,
	// an allow rule added, a deny rule removed, a user added to a
	// department, a purpose hierarchy changed. Empty when the change can
	// only narrow access.
	Widens []string
}

// Change summarises Added and Removed.
func (r ReloadResult) Change() Change {
	var c Change
	for _, text := range r.Added {
		f := strings.Split(text, ", ")
		switch {
		case f[0] == "g2" && len(f) == 3:
			c.Classified = append(c.Classified, f[1]+" -> "+f[2])
		default:
			c.RulesAdded = append(c.RulesAdded, text)
			if (f[0] == "p" && f[len(f)-1] == "allow") || f[0] == "g" || f[0] == "g3" {
				c.Widens = append(c.Widens, "added: "+text)
			}
		}
	}
	for _, text := range r.Removed {
		f := strings.Split(text, ", ")
		switch {
		case f[0] == "g2" && len(f) == 3:
			c.Declassified = append(c.Declassified, f[1]+" -> "+f[2])
			c.Widens = append(c.Widens, "declassified: "+f[1]+" -> "+f[2])
		default:
			c.RulesRemoved = append(c.RulesRemoved, text)
			if (f[0] == "p" && f[len(f)-1] == "deny") || f[0] == "g3" {
				c.Widens = append(c.Widens, "removed: "+text)
			}
		}
	}
	return c
}
