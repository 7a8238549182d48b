package pgtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CertFiles are PEM files of a certificate chain made for tests.
type CertFiles struct {
	CAFile   string // the self-signed CA that signed Cert
	CertFile string // leaf certificate for 127.0.0.1 and localhost
	KeyFile  string // the leaf's private key, mode 0600
}

// GenerateCert writes a fresh CA and a leaf certificate for 127.0.0.1 and
// localhost into dir. It serves both the test server's TLS and pgguard's own
// client-facing TLS in tests and the demo.
func GenerateCert(dir string) (CertFiles, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return CertFiles{}, fmt.Errorf("generate CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pgguard test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return CertFiles{}, fmt.Errorf("create CA certificate: %w", err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return CertFiles{}, fmt.Errorf("generate leaf key: %w", err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		return CertFiles{}, fmt.Errorf("create leaf certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		return CertFiles{}, fmt.Errorf("marshal leaf key: %w", err)
	}
	files := CertFiles{
		CAFile:   filepath.Join(dir, "ca.crt"),
		CertFile: filepath.Join(dir, "server.crt"),
		KeyFile:  filepath.Join(dir, "server.key"),
	}
	for _, f := range []struct {
		path, kind string
		der        []byte
	}{{files.CAFile, "CERTIFICATE", caDER}, {files.CertFile, "CERTIFICATE", leafDER}, {files.KeyFile, "EC PRIVATE KEY", keyDER}} {
		data := pem.EncodeToMemory(&pem.Block{Type: f.kind, Bytes: f.der})
		if err := os.WriteFile(f.path, data, 0o600); err != nil {
			return CertFiles{}, fmt.Errorf("write %s: %w", f.path, err)
		}
	}
	return files, nil
}

// setupTLS puts a certificate into the data directory and turns ssl on.
func (s *Server) setupTLS(settings map[string]string) error {
	files, err := GenerateCert(s.DataDir())
	if err != nil {
		return err
	}
	s.CAFile = files.CAFile
	settings["ssl"] = "on"
	settings["ssl_cert_file"] = files.CertFile
	settings["ssl_key_file"] = files.KeyFile
	return nil
}
