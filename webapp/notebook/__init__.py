"""The notebook pages: the lab index, a lab page, a run's log and a notebook's export."""
