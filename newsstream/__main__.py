from newsstream.cli import main

raise SystemExit(main())
