# An ordinary Python app: the organisers' guide's `requests` example without its hand-written
# logging. Run it under the proxy and every call lands in mistral_usage_log.csv:
#   npx mistral-usage-log run -- python3 examples/app.py
import os

import requests

# Unset: the real API. The demo points it at a local mock server when there is no API key.
BASE = os.environ.get("MISTRAL_SERVER_URL", "https://api.mistral.ai")
API_KEY = os.environ.get("MISTRAL_API_KEY", "no-key-needed-for-the-mock")

response = requests.post(
    f"{BASE}/v1/chat/completions",
    headers={"Authorization": f"Bearer {API_KEY}", "Accept": "application/json"},
    json={"model": "mistral-small-latest", "messages": [{"role": "user", "content": "What is the best way to learn Python?"}]},
)
response.raise_for_status()
print(f"requests:      {response.json()['choices'][0]['message']['content']}")
