package pki

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// store is the operator's directory: every file owner-only (0600 in a 0700 tree), as they hold keys.
type store struct{ dir string }

func (s store) path(name string) string { return filepath.Join(s.dir, name) }

// read returns a file's content, or nil when it does not exist.
func (s store) read(name string) ([]byte, error) {
	b, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// write replaces a file atomically (a rename), so a run killed halfway leaves the old content or the new, never
// a torn key.
func (s store) write(name string, data []byte) error {
	p := s.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// loadPair reads a certificate and its key; ok is false when either is missing or unreadable, or the key is not
// the certificate's: the caller then makes a new pair.
func (s store) loadPair(certName, keyName string) (p *pair, ok bool, err error) {
	certPEM, err := s.read(certName)
	if err != nil {
		return nil, false, err
	}
	keyPEM, err := s.read(keyName)
	if err != nil || certPEM == nil || keyPEM == nil {
		return nil, false, err
	}
	cert, err := parseCert(certPEM)
	if err != nil {
		return nil, false, nil
	}
	key, err := parseKey(keyPEM)
	if err != nil || !publicKeyEqual(key.Public(), cert.PublicKey) {
		return nil, false, nil
	}
	return &pair{cert: cert, key: key}, true, nil
}

func (s store) savePair(p *pair, certName, keyName string) error {
	key, err := p.keyPEM()
	if err != nil {
		return err
	}
	// The key first: a run killed between the two leaves a certificate that does not match, which loadPair refuses.
	if err := s.write(keyName, key); err != nil {
		return err
	}
	return s.write(certName, p.certPEM())
}

func parseCert(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func parseKey(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("no PEM key")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is no private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", key)
	}
	return signer, nil
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// loadSAKeys reads the service-account pair; ok is false unless both exist and match.
func (s store) loadSAKeys() (priv, pub []byte, ok bool, err error) {
	if priv, err = s.read(saKeyFile); err != nil || priv == nil {
		return nil, nil, false, err
	}
	if pub, err = s.read(saPubFile); err != nil || pub == nil {
		return nil, nil, false, err
	}
	key, err := parseKey(priv)
	if err != nil {
		return nil, nil, false, nil
	}
	_, isRSA := key.(*rsa.PrivateKey)
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if !isRSA || err != nil || !bytes.Equal(pub, pemBlock("PUBLIC KEY", pubDER)) {
		return nil, nil, false, nil
	}
	return priv, pub, true, nil
}
