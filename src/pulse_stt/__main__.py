from pulse_stt.cli import main

raise SystemExit(main())
