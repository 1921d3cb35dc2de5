"""Local multi-node networks: launcher, perturbations, Prometheus and Grafana configuration."""
