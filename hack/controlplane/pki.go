package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// runPKI writes everything the control plane needs to trust itself:
//
//	ca.crt ca.key                    cluster CA (also signs CSRs in the controller-manager)
//	apiserver.crt apiserver.key      serving cert for 127.0.0.1 / the node IP / kubernetes.default.svc
//	kubelet.crt kubelet.key          the kubelet's serving cert (logs, exec, port-forward) for the node IP
//	sa.key sa.pub                    ServiceAccount token signing key pair
//	<user>.kubeconfig                admin (system:masters), controller-manager, scheduler,
//	                                 node (system:node:<name>), kube-proxy
func runPKI(args []string) int {
	fs := flag.NewFlagSet("pki", flag.ExitOnError)
	dir := fs.String("dir", "", "output directory")
	server := fs.String("server", "", "apiserver URL for kubeconfigs, e.g. https://10.213.0.1:6443")
	nodeIP := fs.String("node-ip", "127.0.0.1", "the node's address: in the apiserver's and the kubelet's serving certs")
	nodeName := fs.String("node-name", "dial-node", "the node's name: the kubelet's user system:node:<name>")
	_ = fs.Parse(args)
	if *dir == "" || *server == "" {
		fmt.Fprintln(os.Stderr, "pki: --dir and --server are required")
		return 2
	}
	ip := net.ParseIP(*nodeIP)
	if ip == nil {
		fmt.Fprintf(os.Stderr, "pki: --node-ip %q is not an IP address\n", *nodeIP)
		return 2
	}
	if err := writePKI(*dir, *server, ip, *nodeName); err != nil {
		fmt.Fprintf(os.Stderr, "pki: %v\n", err)
		return 1
	}
	return 0
}

func writePKI(dir, server string, nodeIP net.IP, nodeName string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	now := time.Now().Add(-time.Hour)
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "dial-local-ca"},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	if err := writeCert(filepath.Join(dir, "ca.crt"), caDER); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, "ca.key"), caKey); err != nil {
		return err
	}

	serial := int64(2)
	issue := func(name string, subj pkix.Name, server bool) ([]byte, *ecdsa.PrivateKey, error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		t := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      subj,
			NotBefore:    now,
			NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		}
		serial++
		if server {
			t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			t.IPAddresses = []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1"), nodeIP}
			t.DNSNames = []string{"localhost", nodeName, "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
		} else {
			t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		}
		der, err := x509.CreateCertificate(rand.Reader, t, caCert, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		if err := writeCert(filepath.Join(dir, name+".crt"), der); err != nil {
			return nil, nil, err
		}
		return der, key, writeKey(filepath.Join(dir, name+".key"), key)
	}
	if _, _, err := issue("apiserver", pkix.Name{CommonName: "kube-apiserver"}, true); err != nil {
		return err
	}
	// the kubelet's serving cert, so the apiserver can verify it for logs, exec and port-forward
	if _, _, err := issue("kubelet", pkix.Name{CommonName: nodeName}, true); err != nil {
		return err
	}
	// client cert the apiserver presents to the kubelet endpoint
	if _, _, err := issue("apiserver-kubelet-client", pkix.Name{CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}}, false); err != nil {
		return err
	}
	users := []struct {
		file string
		subj pkix.Name
	}{
		{"admin", pkix.Name{CommonName: "dial-admin", Organization: []string{"system:masters"}}},
		{"controller-manager", pkix.Name{CommonName: "system:kube-controller-manager"}},
		{"scheduler", pkix.Name{CommonName: "system:kube-scheduler"}},
		// the Node authorizer and NodeRestriction admission know the kubelet by this name and group
		{"node", pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}}},
		{"kube-proxy", pkix.Name{CommonName: "system:kube-proxy"}},
	}
	for _, u := range users {
		der, key, err := issue(u.file, u.subj, false)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: dial
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: dial
  context:
    cluster: dial
    user: %s
current-context: dial
`, server, b64pem("CERTIFICATE", caDER), u.file, b64pem("CERTIFICATE", der), b64pem("PRIVATE KEY", keyDER), u.file)
		if err := os.WriteFile(filepath.Join(dir, u.file+".kubeconfig"), []byte(kc), 0o600); err != nil {
			return err
		}
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, "sa.key"), saKey); err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o600)
}

func b64pem(typ string, der []byte) string {
	return base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
}

func writeCert(path string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
}
