# bench/plot.gp: the PNGs of one bench/run.sh run, from the data files report.py wrote.
#   gnuplot -e "dat='RUN_DIR/plot'; out='bench/results/STAMP'" bench/plot.gp
# writes out-throughput.png, out-ratios.png, out-workers.png, out-connections.png, out-latency.png.
load dat.'/vars.gp'

set terminal pngcairo size 1280,720 font "sans,10" noenhanced
set datafile missing "-"
set grid ytics mytics lc rgb "#dddddd"
set key below maxrows 3 noautotitle
set style fill solid 0.85 border -1

# Requests/s of every main server in every scenario; log scale: the scenarios span 100 to 100k.
set output out.'-throughput.png'
set title "Requests/s per scenario: median, whiskers min-max (".run_title.")"
set style data histogram
set style histogram errorbars gap 2 lw 1
set logscale y
set ylabel "requests/s (log scale)"
set xtics rotate by -20 nomirror
plot for [i=0:n_main-1] dat.'/throughput.dat' using (column(2+3*i)):(column(3+3*i)):(column(4+3*i)):xtic(1) lc rgb word(colors_main, i+1) title columnhead(2+3*i)

# The ratios the results file states, per scenario: above 1, Prefork is ahead.
set output out.'-ratios.png'
set title "Prefork / Gunicorn and Prefork / Kestrel: median of per-round ratios of requests/s (".run_title.")"
set style histogram clustered gap 2
set ylabel "ratio (log scale; 1 = as fast)"
plot for [i=2:n_pairs_g+1] dat.'/ratios.dat' using i:xtic(1) lc rgb word(colors_pairs, i-1) title columnhead(i), \
     for [i=n_pairs_g+2:n_pairs_g+n_pairs_k+1] dat.'/ratios.dat' using i:xtic(1) fs pattern 2 border lc rgb word(colors_pairs, i-1) lc rgb word(colors_pairs, i-1) title columnhead(i), \
     1 with lines lw 2 dt 2 lc rgb "black" title "1 (as fast)"

unset style
set style fill solid 0.85 border -1
unset logscale y
set xtics norotate
set yrange [0:*]

# Requests/s against worker processes: a line per Prefork class, a point per comparator at its
# own process count. One panel per sweep scenario.
set output out.'-workers.png'
set multiplot layout 1, n_sweep title "Requests/s against worker processes (".run_title.")"
set xlabel "worker processes"
set ylabel "requests/s"
set xtics 1
do for [b=0:n_sweep-1] {
  set title word(sweep_titles, b+1)
  plot for [i=2:n_classes+1] dat.'/workers.dat' index b using 1:i with linespoints lw 2 pt 7 lc rgb word(colors_classes, i-1) title columnhead(i), \
       for [i=n_classes+2:n_classes+n_others+1] dat.'/workers.dat' index b using 1:i with points pt 5 ps 1.6 lc rgb word(colors_others, i-n_classes-1) title columnhead(i)
}
unset multiplot

# Hello, keep-alive, against the number of connections.
set output out.'-connections.png'
set title "GET /, keep-alive: requests/s against connections (".run_title.")"
set logscale x
set xtics (50, 500, 5000)
set xlabel "connections (log scale)"
plot for [i=2:n_main+1] dat.'/connections.dat' using 1:i with linespoints lw 2 pt 7 lc rgb word(colors_main, i-1) title columnhead(i)

# Latency at a fixed rate by percentile; x in "nines" so the tail gets room.
set output out.'-latency.png'
set title sprintf("GET / at a fixed %d requests/s (no coordinated omission): latency by percentile (%s)", paced_rate, run_title)
unset logscale x
set logscale y
set yrange [*:*]
set xtics ("50%%" log10(2), "75%%" log10(4), "90%%" 1, "99%%" 2, "99.9%%" 3, "99.99%%" 4)
set xlabel "percentile"
set ylabel "latency, ms (log scale)"
if (n_paced > 0) {
  plot for [i=2:n_paced+1] dat.'/latency.dat' using (-log10(1 - $1 / 100)):i with linespoints lw 2 pt 7 lc rgb word(colors_paced, i-1) title columnhead(i)
} else {
  set label 1 "no fixed-rate run in this mode" at graph 0.5, 0.5 center
  plot 1 notitle lc rgb "white"
}
