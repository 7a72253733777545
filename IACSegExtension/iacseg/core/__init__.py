"""The bottom of the engine: records and rules every stage shares, torch-free and importing no other stage.

``contracts`` (file and label names), ``errors``, ``progress``, ``locations`` (where files live), ``anatomy``
(landmark limits), ``landmarks`` (`Landmark`), ``plane`` (`MidsagittalPlane`), ``grid`` (`Grid`), ``files``
(atomic writes, hashes, locks) and ``device`` (the one device resolver; torch is imported only when called).
Nothing is imported here, so importing one of them loads only what it needs.
"""
