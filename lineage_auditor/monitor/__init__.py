"""Monitoring: pipeline health folded from run events (:mod:`.fold`) and exposed to Prometheus (:mod:`.exposition`)."""
