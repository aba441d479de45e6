package provision

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const labConf = `apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster:
    server: https://172.30.0.10:8443
    certificate-authority-data: Q0E=
users:
- name: kubernetes-admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZ
contexts:
- name: kubernetes-admin@kubernetes
  context: {cluster: kubernetes, user: kubernetes-admin}
current-context: kubernetes-admin@kubernetes
`

const userConf = `apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster: {server: https://prod:6443}
- name: ci
  cluster: {server: https://old:6443}
users:
- name: prod
  user:
    exec: {command: aws, apiVersion: client.authentication.k8s.io/v1beta1}
contexts:
- name: prod
  context: {cluster: prod, user: prod}
current-context: prod
`

func TestMergeKubeconfig(t *testing.T) {
	out, err := MergeKubeconfig([]byte(userConf), []byte(labConf), "ci", false)
	if err != nil {
		t.Fatal(err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(out, &kc); err != nil {
		t.Fatal(err)
	}
	if len(kc.Clusters) != 2 || len(kc.Users) != 2 || len(kc.Contexts) != 2 {
		t.Fatalf("entries: %s", out)
	}
	if kc.CurrentContext != "prod" {
		t.Errorf("current context changed without use: %q", kc.CurrentContext)
	}
	s := string(out)
	for _, want := range []string{"server: https://172.30.0.10:8443", "command: aws", "server: https://prod:6443"} {
		if !strings.Contains(s, want) {
			t.Errorf("merged config lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "https://old:6443") {
		t.Errorf("old ci cluster kept:\n%s", s)
	}
	out, _ = MergeKubeconfig(out, []byte(labConf), "ci", true)
	if err := yaml.Unmarshal(out, &kc); err != nil || kc.CurrentContext != "ci" || len(kc.Clusters) != 2 {
		t.Errorf("second merge with use: %v %s", err, out)
	}
	out, _ = MergeKubeconfig(nil, []byte(labConf), "lab1", false)
	if err := yaml.Unmarshal(out, &kc); err != nil || kc.CurrentContext != "lab1" || len(kc.Contexts) != 1 {
		t.Errorf("merge into empty: %v %s", err, out)
	}
}
