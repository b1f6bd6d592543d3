"""Lab hosts, the machines a learner's commands run on, behind one interface (``base.LabHost``) so that
nothing above them knows which backend made one (docs/lab-hosts.md)."""
