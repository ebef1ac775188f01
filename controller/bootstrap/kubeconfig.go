package bootstrap

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/istio-sidecar/istio-sidecar/controller/pki"
)

// writeKubeconfig writes the admin's kubeconfig (keys inline, 0600) when it differs: the API server's address
// comes from its Nomad service, and a run after it moved points the file at the new one.
func (b *run) writeKubeconfig(addr string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["mesh"] = &clientcmdapi.Cluster{Server: "https://" + addr, TLSServerName: pki.APIServerName,
		CertificateAuthorityData: b.pki.File(pki.APIServerCACert)}
	cfg.AuthInfos[pki.AdminUser] = &clientcmdapi.AuthInfo{ClientCertificateData: b.pki.File(pki.AdminCert),
		ClientKeyData: b.pki.File(pki.AdminKey)}
	cfg.Contexts["mesh"] = &clientcmdapi.Context{Cluster: "mesh", AuthInfo: pki.AdminUser}
	cfg.CurrentContext = "mesh"
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	path := filepath.Join(b.cfg.Dir, AdminKubeconfig)
	have, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if bytes.Equal(have, data) {
		b.logf("kubeconfig: %s unchanged", path)
		return nil
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	b.logf("kubeconfig: %s written (kubectl --kubeconfig %s)", path, path)
	return nil
}
