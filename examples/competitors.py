"""What users run today to capture X's filtered stream into a file, for
`stream_bench --python PYTHON` (issue 30's comparison rows).

    python competitors.py tweepy|twarc2 BASE_URL OUT RECORDS

Each client reads `BASE_URL/2/tweets/search/stream` (the bench's server, not
api.twitter.com: both libraries hard-code that host, so the URL is the one
thing patched) and stops after RECORDS posts:

- tweepy: a `StreamingClient` whose `on_data` does what tweepy does (parse
  the line, build the `Tweet`, the includes and the rules) and writes the
  line to OUT, the usual script.
- twarc2: the client behind `twarc2 stream` (`Twarc2._stream`: parse each
  line into a dict) writing each result as `twarc2 stream` does
  (`json.dumps`, one per line).

Both write through Python's buffered file and fsync once at the end: less
durability than ingest gives (it fsyncs every batch), so the comparison
favours them.
"""

import json
import os
import sys


def tweepy_capture(base, out, records):
    import tweepy

    class Capture(tweepy.StreamingClient):
        def __init__(self):
            super().__init__("bench", wait_on_rate_limit=False)
            self.file = open(out, "w", encoding="utf-8")
            self.count = 0

        def _connect(self, method, endpoint, **kwargs):
            self.session.headers["Authorization"] = f"Bearer {self.bearer_token}"
            url = f"{base}/2/tweets/{endpoint}/stream"
            tweepy.streaming.BaseStream._connect(self, method, url, **kwargs)

        def on_data(self, raw_data):
            super().on_data(raw_data)
            self.file.write(raw_data.decode("utf-8") + "\n")
            self.count += 1
            if self.count >= records:
                self.disconnect()

        def on_connection_error(self):
            raise SystemExit("tweepy: connection error")

    client = Capture()
    client.filter()
    client.file.flush()
    os.fsync(client.file.fileno())
    client.file.close()
    return client.count


def twarc2_capture(base, out, records):
    import twarc

    client = twarc.Twarc2(bearer_token="bench")
    count = 0
    with open(out, "w", encoding="utf-8") as f:
        url = f"{base}/2/tweets/search/stream"
        for result in client._stream(url, {}, None, False):
            f.write(json.dumps(result) + "\n")
            count += 1
            if count >= records:
                break
        f.flush()
        os.fsync(f.fileno())
    return count


def main():
    which, base, out, records = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    capture = {"tweepy": tweepy_capture, "twarc2": twarc2_capture}[which]
    got = capture(base, out, records)
    if got != records:
        raise SystemExit(f"{which}: {got} of {records} posts")


if __name__ == "__main__":
    main()
