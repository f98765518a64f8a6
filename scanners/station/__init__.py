"""The scanning station: handover sessions at a desk with a webcam.

Frames come from :mod:`scanners.capture` and are decoded by
:mod:`scanners.decode`; this package verifies what was read against the
cached key bundle, counts it against the expected list, signs the handover
events and keeps them in a durable outbox until the server's receipts are in.
See docs/station.md.

| module | what it gives |
|---|---|
| ``home`` | the station folder: key, config, pinned log key |
| ``caches`` | the verified key bundle and the expected lists, for offline work |
| ``verdict`` | green / amber / red / grey for one QR text, with the reason |
| ``session`` | a handover session: badges, items, exceptions, counts, events |
| ``manifest`` | handover manifests: signed item lists the sending side prints |
| ``outbox`` | SQLite (WAL, synchronous=FULL): events, receipts, refusals, drafts |
| ``sender`` | batches, retries with backoff and jitter, verified receipts |
| ``client`` | signed HTTP requests to the API |
| ``station`` | :class:`Station`: all of the above for the UI, headless mode and CLI |
| ``render`` | frame + overlay + Chinese side panel -> image (pure) |
| ``headless`` | JSON lines for kiosks and tests |
| ``window`` | the pygame window, keys and sound |
"""
