from rxf_repro.rouge import main

raise SystemExit(main())
