"""Images for labs: names read as docker reads them (``names``), the machine's cache of images (a
pull-through cache of an upstream registry beside a store of imported archives), the forwarder that
lets each lab host's dockerd pull from it and nothing else, and ``ensure`` that a lab's images are in
a lab host (``images.ensure.ensure``). Layer 2: it uses ``webapp.labhost``; nothing of the lab host layer imports it."""
