"""The link-rot watch: how a live fetch compares with the last capture (`classify`),
the history of checks and a link's standing (`history`), and the watch's report (`report`)."""
