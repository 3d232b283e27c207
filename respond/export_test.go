package respond

// SetCommitHook makes s call f at the start of each commit of a change
// to its state (not of a bouncer's position); an error from f fails that
// commit as a storage error would.
func (s *Decisions) SetCommitHook(f func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commitHook = f
}
