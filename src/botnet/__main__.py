from botnet.cli import main

raise SystemExit(main())
