package sqlscan
import ("testing";"strings";"os";pg "github.com/pganalyze/pg_query_go/v6")
func TestDeepCrashProbe(t *testing.T){
 n := 0
 for _, c := range os.Getenv("N") { n = n*10 + int(c-'0') }
 s := "SELECT " + strings.Repeat(os.Getenv("OPEN"), n) + "1" + strings.Repeat(os.Getenv("REP"), n)
 done := make(chan bool)
 go func(){
   _, err := pg.Parse(s); t.Log("parse", err)
   _, err = pg.Normalize(s); t.Log("norm", err)
   _, err = pg.Fingerprint(s); t.Log("fp", err)
   close(done)
 }()
 <-done
}
