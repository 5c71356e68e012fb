"""What tests share: in-process helpers (:mod:`.helpers`), real processes (:mod:`.processes`), the
sandbox's request helpers (:mod:`.sandbox`), the leak search (:mod:`.leaks`), paths (:mod:`.paths`)."""
