"""The voices a sandbox portal offers by default: exactly the list on Bitrix24's page for
`voximplant.tts.voices.get` (voice id -> description). The `*internal*` voices of the callback.start
page's examples (`ruinternalfemale`, `deinternalfemale`) are not in it, as on that page: a portal
that offers them says so in its own `voices`."""

from __future__ import annotations

from collections.abc import Mapping

DOCUMENTED_VOICES: Mapping[str, str] = {
    "auenglishfemale": "Australian English (Female) (Amazon)",
    "brportuguesefemale": "Brazilian Portuguese (Female) (Amazon)",
    "caenglishfemale": "Canadian English (Female) (Default)",
    "cafrenchfemale": "Canadian French (Female) (Amazon)",
    "cafrenchmale": "Canadian French (Male) (Amazon)",
    "chchinesefemale": "Chinese (Female) (Default)",
    "chchinesemale": "Chinese (Male) (Default)",
    "eurcatalanfemale": "Catalan (Female) (Default)",
    "eurczechfemale": "Czech (Female) (Default)",
    "eurdanishfemale": "Danish (Female) (Default)",
    "eurdutchfemale": "Dutch (Female) (Default)",
    "eurfinnishfemale": "Finnish (Female) (Default)",
    "eurfrenchfemale": "French (Female) (Amazon)",
    "eurfrenchmale": "French (Male) (Amazon)",
    "eurgermanfemale": "German (Female) (Default)",
    "eurgermanmale": "German (Male) (Default)",
    "euritalianfemale": "Italian (Female) (Default)",
    "euritalianmale": "Italian (Male) (Default)",
    "eurnorwegianfemale": "Norwegian (Female) (Default)",
    "eurpolishfemale": "Polish (Female) (Default)",
    "eurportuguesefemale": "Portuguese (Female) (Default)",
    "eurportuguesemale": "Portuguese (Male) (Default)",
    "eurspanishfemale": "Spanish (Female) (Default)",
    "eurspanishmale": "Spanish (Male) (Default)",
    "eurturkishfemale": "Turkish (Female) (Default)",
    "eurturkishmale": "Turkish (Male) (Default)",
    "hkchinesefemale": "Hong Kong Cantonese (Female) (Default)",
    "huhungarianfemale": "Hungarian (Female) (Default)",
    "jpjapanesefemale": "Japanese (Female) (Default)",
    "jpjapanesemale": "Japanese (Male) (Default)",
    "krkoreanfemale": "Korean (Female) (Default)",
    "krkoreanmale": "Korean (Male) (Default)",
    "usinternalfemale": "English (Female) (Default)",
    "usinternalmale": "English (Male) (Default)",
    "swswedishfemale": "Swedish (Female) (Default)",
    "twchinesefemale": "Taiwanese Chinese (Female) (Default)",
    "ukenglishfemale": "English (Female) (Amazon)",
    "ukenglishmale": "English (Male) (Amazon)",
    "usenglishfemale": "American English (Female) (Default)",
    "usenglishmale": "American English (Male) (Default)",
    "usspanishfemale": "American Spanish (Female) (Amazon)",
    "usspanishmale": "American Spanish (Male) (Amazon)",
}
