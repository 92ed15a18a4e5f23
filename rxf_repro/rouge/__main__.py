import sys

from rxf_repro.rouge import main

sys.exit(main())
