from dlport.cli import main

raise SystemExit(main())
