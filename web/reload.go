package web

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// Reload re-reads every file the server was given: the API keys, the user
// token key and the TLS certificate and key (the daemon calls it on
// SIGHUP). Each is replaced only when its new contents are good; a bad one
// is reported in the joined error and the one in use stays. The paths
// themselves are those of Options: changing them needs a restart.
func (s *Server) Reload() error {
	var errs []error
	if err := s.ReloadKeys(); err != nil {
		errs = append(errs, err)
	}
	if err := s.reloadUserTokenKey(); err != nil {
		errs = append(errs, err)
	}
	if err := s.reloadTLS(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// TLSEnabled reports whether the listener serves TLS (Options.TLSCertFile).
func (s *Server) TLSEnabled() bool { return s.opts.TLSCertFile != "" }

// TLSConfig returns the listener's TLS settings, or nil without TLS. Its
// certificate is looked up for every handshake, so a Reload that swaps it
// reaches new connections without a restart; open ones keep theirs.
func (s *Server) TLSConfig() *tls.Config {
	if !s.TLSEnabled() {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cert.Load(), nil
		},
	}
}

// reloadTLS loads the certificate and key files; on error the certificate
// in use stays and the error says so.
func (s *Server) reloadTLS() error {
	if !s.TLSEnabled() {
		return nil
	}
	c, err := tls.LoadX509KeyPair(s.opts.TLSCertFile, s.opts.TLSKeyFile)
	if err != nil {
		if s.cert.Load() != nil {
			s.log.Error("tls certificate reload failed; the old certificate stays", "cert", s.opts.TLSCertFile, "err", err)
		}
		return fmt.Errorf("tls certificate %s and key %s: %w", s.opts.TLSCertFile, s.opts.TLSKeyFile, err)
	}
	s.cert.Store(&c)
	if c.Leaf != nil {
		s.log.Info("tls certificate loaded", "cert", s.opts.TLSCertFile, "subject", c.Leaf.Subject.String(),
			"not_after", c.Leaf.NotAfter)
	}
	return nil
}
