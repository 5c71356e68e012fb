"""The Bitrix24 REST client: requests and their errors, OAuth tokens, and the pre-flight check."""
